import {
  Area,
  AreaChart,
  Bar,
  BarChart,
  CartesianGrid,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from 'recharts';
import type { SeriesPoint } from '../lib/aggregate';
import { formatCompact, formatCount, formatQuantity, formatWindowLabel } from '../lib/format';

const AXIS = { fontSize: 11, fill: '#64748b' };

interface TooltipPayload {
  payload: SeriesPoint;
}

function TrendTooltip({
  active,
  payload,
  tz,
  windowType,
}: {
  active?: boolean;
  payload?: TooltipPayload[];
  tz: string;
  windowType: string;
}) {
  if (!active || !payload?.length) return null;
  const p = payload[0].payload;
  return (
    <div className="rounded-lg border border-slate-200 bg-white px-3 py-2 text-xs shadow-lg">
      <p className="font-medium text-slate-900">{formatWindowLabel(p.t, tz, windowType, true)}</p>
      <p className="mt-1 text-slate-600">
        Quantity <span className="font-semibold text-slate-900 tabular-nums">{formatQuantity(p.exact)}</span>
      </p>
      <p className="text-slate-600">
        Events <span className="font-semibold text-slate-900 tabular-nums">{formatCount(p.events)}</span>
      </p>
    </div>
  );
}

export function TrendChart({
  points,
  tz,
  windowType,
  metric,
  height = 280,
  label,
}: {
  points: SeriesPoint[];
  tz: string;
  windowType: string;
  metric: 'quantity' | 'events';
  height?: number;
  label: string;
}) {
  return (
    <div role="img" aria-label={label} style={{ height }} className="w-full">
      <ResponsiveContainer width="100%" height="100%">
        <AreaChart data={points} margin={{ top: 8, right: 8, bottom: 0, left: 0 }}>
          <defs>
            <linearGradient id="trendFill" x1="0" y1="0" x2="0" y2="1">
              <stop offset="0%" stopColor="#6366f1" stopOpacity={0.28} />
              <stop offset="100%" stopColor="#6366f1" stopOpacity={0.02} />
            </linearGradient>
          </defs>
          <CartesianGrid stroke="#e2e8f0" strokeDasharray="3 3" vertical={false} />
          <XAxis
            dataKey="t"
            type="category"
            tickFormatter={(t: number) => formatWindowLabel(t, tz, windowType)}
            tick={AXIS}
            tickLine={false}
            axisLine={{ stroke: '#e2e8f0' }}
            minTickGap={24}
          />
          <YAxis
            tickFormatter={(v: number) => formatCompact(v)}
            tick={AXIS}
            tickLine={false}
            axisLine={false}
            width={48}
            allowDecimals={metric === 'quantity'}
          />
          <Tooltip
            content={<TrendTooltip tz={tz} windowType={windowType} />}
            cursor={{ stroke: '#a5b4fc', strokeWidth: 1 }}
          />
          <Area
            type="monotone"
            dataKey={metric}
            stroke="#4f46e5"
            strokeWidth={2}
            fill="url(#trendFill)"
            isAnimationActive={false}
            dot={false}
            activeDot={{ r: 4, strokeWidth: 0, fill: '#4f46e5' }}
          />
        </AreaChart>
      </ResponsiveContainer>
    </div>
  );
}

export interface BarDatum {
  key: string;
  value: number;
  exact: string;
  events: number;
}

function BarTooltip({ active, payload }: { active?: boolean; payload?: { payload: BarDatum }[] }) {
  if (!active || !payload?.length) return null;
  const p = payload[0].payload;
  return (
    <div className="rounded-lg border border-slate-200 bg-white px-3 py-2 text-xs shadow-lg">
      <p className="font-medium text-slate-900">{p.key}</p>
      <p className="mt-1 text-slate-600">
        Quantity <span className="font-semibold text-slate-900 tabular-nums">{formatQuantity(p.exact)}</span>
      </p>
      <p className="text-slate-600">
        Events <span className="font-semibold text-slate-900 tabular-nums">{formatCount(p.events)}</span>
      </p>
    </div>
  );
}

/** Vertical bars, one per key (tenants, days). */
export function UsageBarChart({
  data,
  height = 260,
  label,
  tickFormatter,
}: {
  data: BarDatum[];
  height?: number;
  label: string;
  tickFormatter?: (key: string) => string;
}) {
  return (
    <div role="img" aria-label={label} style={{ height }} className="w-full">
      <ResponsiveContainer width="100%" height="100%">
        <BarChart data={data} margin={{ top: 8, right: 8, bottom: 0, left: 0 }}>
          <CartesianGrid stroke="#e2e8f0" strokeDasharray="3 3" vertical={false} />
          <XAxis
            dataKey="key"
            tick={AXIS}
            tickLine={false}
            axisLine={{ stroke: '#e2e8f0' }}
            interval="preserveStartEnd"
            minTickGap={8}
            tickFormatter={tickFormatter}
          />
          <YAxis
            tickFormatter={(v: number) => formatCompact(v)}
            tick={AXIS}
            tickLine={false}
            axisLine={false}
            width={48}
          />
          <Tooltip content={<BarTooltip />} cursor={{ fill: '#eef2ff' }} />
          <Bar dataKey="value" fill="#6366f1" radius={[4, 4, 0, 0]} maxBarSize={40} isAnimationActive={false} />
        </BarChart>
      </ResponsiveContainer>
    </div>
  );
}
