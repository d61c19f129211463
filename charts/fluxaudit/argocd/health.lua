-- Argo CD health check for fluxaudit.dev/FluxAudit, read from the standard conditions the
-- operator writes (the same ones kstatus and Flux read). Install it in argocd-cm as
--   resource.customizations.health.fluxaudit.dev_FluxAudit: |
--     <this file>
local hs = {}
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the FluxAudit operator to pick the audit up"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration ~= nil and obj.status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end
local byType = {}
for _, condition in ipairs(obj.status.conditions) do
  byType[condition.type] = condition
end
local stalled, ready, reconciling = byType["Stalled"], byType["Ready"], byType["Reconciling"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.reason .. ": " .. (stalled.message or "")
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Audit complete"
  return hs
end
hs.status = "Progressing"
if reconciling ~= nil and reconciling.message ~= nil then
  hs.message = reconciling.message
else
  hs.message = "Audit in progress"
end
return hs
