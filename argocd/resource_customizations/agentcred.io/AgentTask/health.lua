-- Argo CD health check for agentcred.io/AgentTask (a unit of agent work that holds
-- short-lived credentials). Written for Argo CD's Lua runtime (gopher-lua, Lua 5.1)
-- and only with the base library, so it works both built in and from argocd-cm
-- without useOpenLibs. Mapping (README "Argo CD"):
--   no phase yet                 Progressing  the operator has not picked it up
--   Pending                      Progressing  with the Ready condition's reason and
--                                             message when it says why it waits
--                                             (BackendUnavailable, CredentialNotFound,
--                                             SecretConflict, CredentialExpired, ...)
--   Active, spec.completed=true  Progressing  completion asked for, revocation running
--   Active                       Healthy
--   Succeeded                    Healthy
--   Expired                      Healthy      the deadline did its job: credentials
--                                             revoked as designed; not a failure, and
--                                             not Suspended (nothing will resume it)
--   Failed                       Degraded     with the reason and message
local hs = {}

local function ready_condition(status)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == "Ready" then
      return c
    end
  end
  return nil
end

local function explain(reason, message, fallback)
  if reason ~= nil and reason ~= "" then
    if message ~= nil and message ~= "" then
      return reason .. ": " .. message
    end
    return reason
  end
  if message ~= nil and message ~= "" then
    return message
  end
  return fallback
end

local status = obj.status
if status == nil or status.phase == nil or status.phase == "" then
  hs.status = "Progressing"
  hs.message = "Waiting for the agentcred operator to start the task"
  return hs
end

local phase = status.phase
if phase == "Pending" then
  hs.status = "Progressing"
  local ready = ready_condition(status)
  if ready ~= nil and ready.status == "False" then
    hs.message = explain(ready.reason, ready.message, "Issuing credentials")
  else
    hs.message = "Issuing credentials"
  end
  return hs
end

if phase == "Active" then
  if obj.spec ~= nil and obj.spec.completed == true then
    hs.status = "Progressing"
    hs.message = "Completion requested: revoking credentials"
    return hs
  end
  hs.status = "Healthy"
  hs.message = explain(nil, status.message, "Credentials issued")
  return hs
end

if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = explain(status.reason, status.message, "Task succeeded")
  return hs
end

if phase == "Expired" then
  hs.status = "Healthy"
  hs.message = "Task expired: " .. explain(status.reason, status.message, "deadline passed")
  return hs
end

if phase == "Failed" then
  hs.status = "Degraded"
  hs.message = explain(status.reason, status.message, "Task failed")
  return hs
end

hs.status = "Unknown"
hs.message = "Unknown phase " .. phase
return hs
