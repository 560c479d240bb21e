import type { InputHTMLAttributes, ReactNode, LabelHTMLAttributes, Ref, SelectHTMLAttributes } from 'react';
import { cn } from '../../lib/cn';

const field =
  'min-w-0 rounded-md border border-slate-300 bg-white px-3 text-slate-900 shadow-xs ' +
  'placeholder:text-slate-400 transition-colors ' +
  'focus-visible:outline-none focus-visible:border-indigo-500 focus-visible:ring-2 focus-visible:ring-indigo-500/30 ' +
  'disabled:cursor-not-allowed disabled:bg-slate-50 disabled:text-slate-500 aria-[invalid=true]:border-red-400';

export type FieldSize = 'sm' | 'md';
const SIZES: Record<FieldSize, string> = { sm: 'h-8 text-xs', md: 'h-9 text-sm' };

interface SizeProps {
  /** Control height and text size. */
  fieldSize?: FieldSize;
  /** Stretch to the container's width (default true). */
  block?: boolean;
}

export function Input({
  className,
  ref,
  fieldSize = 'md',
  block = true,
  ...props
}: InputHTMLAttributes<HTMLInputElement> & SizeProps & { ref?: Ref<HTMLInputElement> }) {
  return <input ref={ref} className={cn(field, SIZES[fieldSize], block && 'w-full', className)} {...props} />;
}

export function Select({ className, fieldSize = 'md', block = true, ...props }: SelectHTMLAttributes<HTMLSelectElement> & SizeProps) {
  return <select className={cn(field, SIZES[fieldSize], block && 'w-full', 'cursor-pointer pr-8', className)} {...props} />;
}

export function Label({ className, ...props }: LabelHTMLAttributes<HTMLLabelElement>) {
  return <label className={cn('text-xs font-medium text-slate-700', className)} {...props} />;
}

/** A label above its control, with an optional hint or error below. */
export function Field({
  label,
  htmlFor,
  hint,
  error,
  children,
  className,
}: {
  label: string;
  htmlFor: string;
  hint?: string;
  error?: string | null;
  children: ReactNode;
  className?: string;
}) {
  return (
    <div className={cn('flex min-w-0 flex-col gap-1.5', className)}>
      <Label htmlFor={htmlFor}>{label}</Label>
      {children}
      {error ? (
        <p id={`${htmlFor}-error`} className="text-xs text-red-600">
          {error}
        </p>
      ) : hint ? (
        <p id={`${htmlFor}-hint`} className="text-xs text-slate-500">
          {hint}
        </p>
      ) : null}
    </div>
  );
}
