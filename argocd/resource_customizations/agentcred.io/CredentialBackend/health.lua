-- Argo CD health check for agentcred.io/AgentCredential and CredentialBackend (the
-- same file under both kinds; a test keeps them identical). Written for Argo CD's Lua
-- runtime (gopher-lua, Lua 5.1) and only with the base library, so it works both
-- built in and from argocd-cm without useOpenLibs. Mapping (README "Argo CD"):
--   no status, or status.observedGeneration behind metadata.generation
--                                 Progressing  the operator has not checked this spec
--   no Ready condition, or Ready=Unknown
--                                 Progressing
--   Ready=True                    Healthy
--   Ready=False                   Degraded     with reason and message, whatever the
--                                              reason. BackendUnavailable included: an
--                                              unreachable backend is an outage that
--                                              the Application should show, not a
--                                              spinner; the periodic re-check turns it
--                                              Healthy again by itself.
local hs = {}

local status = obj.status
local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end

if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the agentcred operator to check this " .. obj.kind
  return hs
end

if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the agentcred operator to check generation " .. generation
  return hs
end

local ready = nil
if status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if c.type == "Ready" then
      ready = c
    end
  end
end

if ready == nil or ready.status == "Unknown" then
  hs.status = "Progressing"
  hs.message = "Waiting for the agentcred operator to check this " .. obj.kind
  return hs
end

local text = ""
if ready.reason ~= nil and ready.reason ~= "" then
  text = ready.reason
end
if ready.message ~= nil and ready.message ~= "" then
  if text ~= "" then
    text = text .. ": " .. ready.message
  else
    text = ready.message
  end
end

if ready.status == "True" then
  hs.status = "Healthy"
else
  hs.status = "Degraded"
end
hs.message = text
return hs
