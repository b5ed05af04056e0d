-- Argo CD health of a backstop.io BackupDrill, a one-shot run: its phase
-- (Pending, Running, Succeeded, Failed), and the Stalled condition.
local hs = { status = "Progressing", message = "Waiting for the operator to start the run" }
local function condition(t)
  if obj.status ~= nil and obj.status.conditions ~= nil then
    for _, c in ipairs(obj.status.conditions) do
      if c.type == t then
        return c
      end
    end
  end
  return nil
end
local function describe(c)
  return (c.reason or "") .. ": " .. (c.message or "")
end
if obj.status == nil then
  return hs
end
local phase = obj.status.phase
local ready = condition("Ready")
local stalled = condition("Stalled")
if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = "Succeeded"
  if ready ~= nil then
    hs.message = describe(ready)
  end
  return hs
end
if phase == "Failed" or (stalled ~= nil and stalled.status == "True") then
  hs.status = "Degraded"
  if stalled ~= nil then
    hs.message = describe(stalled)
  elseif ready ~= nil then
    hs.message = describe(ready)
  else
    hs.message = "Failed"
  end
  return hs
end
if phase ~= nil and phase ~= "" then
  hs.message = phase
end
local reconciling = condition("Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = (phase or "Pending") .. ": " .. (reconciling.message or "")
end
return hs
