-- post_jobs_batch.lua - wrk script of bench/api: POST /v1/jobs/batch with
-- 100 jobs of bench/post_job.lua's shape (300 bytes each) per request.
local hook = os.getenv("OB_HOOK_URL") or "http://127.0.0.1:9/hook"
local head = '{"kind":"http.request","queue":"bench","payload":{"method":"POST","url":"'
    .. hook .. '","headers":{"Content-Type":"text/plain"},"body":"'
local tail = '"}}'
local job = head .. string.rep("x", 300 - #head - #tail) .. tail
local jobs = {}
for i = 1, 100 do jobs[i] = job end
wrk.method = "POST"
wrk.path = "/v1/jobs/batch"
wrk.body = '{"jobs":[' .. table.concat(jobs, ",") .. ']}'
wrk.headers["Content-Type"] = "application/json"
