-- post_compat.lua - wrk script of bench/compat: the same 1 KB text mail to
-- one recipient, in the dialect OB_API names: "native" (POST /v1/messages),
-- "postmark" (POST /email) or "resend" (POST /emails).
local api = os.getenv("OB_API") or "native"
local text = string.rep("All work and no play. ", 46)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if api == "postmark" then
    wrk.path = "/email"
    wrk.headers["X-Postmark-Server-Token"] = "bench-token-0123456789"
    wrk.body = '{"From":"bench@example.com","To":"r1@example.com","Subject":"bench","TextBody":"' .. text .. '"}'
elseif api == "resend" then
    wrk.path = "/emails"
    wrk.body = '{"from":"bench@example.com","to":["r1@example.com"],"subject":"bench","text":"' .. text .. '"}'
else
    wrk.path = "/v1/messages"
    wrk.body = '{"from":"bench@example.com","to":["r1@example.com"],"subject":"bench","text":"' .. text .. '"}'
end
