-- post_job.lua - wrk script of bench/api: POST /v1/jobs with a 300-byte
-- JSON job, an http.request to OB_HOOK_URL (nginx's `return 200` in the
-- bench). The same request goes to nginx for the loopback ceiling.
local hook = os.getenv("OB_HOOK_URL") or "http://127.0.0.1:9/hook"
local head = '{"kind":"http.request","queue":"bench","payload":{"method":"POST","url":"'
    .. hook .. '","headers":{"Content-Type":"text/plain"},"body":"'
local tail = '"}}'
wrk.method = "POST"
wrk.path = "/v1/jobs"
wrk.body = head .. string.rep("x", 300 - #head - #tail) .. tail
wrk.headers["Content-Type"] = "application/json"
