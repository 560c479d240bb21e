-- Answers with the current epoch (bumping it first when asked).
return epoch
