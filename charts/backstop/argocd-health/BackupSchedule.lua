-- Argo CD health of a backstop.io BackupSchedule: the Ready, Reconciling and Stalled
-- conditions, as kstatus reads them.
local hs = { status = "Progressing", message = "Waiting for the operator to report status" }
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
local generation = obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration ~= nil and obj.status.observedGeneration ~= generation then
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end
local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end
if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Suspended: no new backups start"
  return hs
end
local reconciling = condition("Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling)
  return hs
end
local ready = condition("Ready")
if ready ~= nil then
  if ready.status == "True" and (ready.observedGeneration == nil or generation == nil or ready.observedGeneration == generation) then
    hs.status = "Healthy"
  end
  hs.message = describe(ready)
end
return hs
