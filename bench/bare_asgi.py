"""The physical limit for an HTTP JSON endpoint on this machine: a raw ASGI app under the same server as
the services (uvicorn, one process) that reads the request's body and answers 202 with a small JSON
document — no framework, no parsing, no I/O."""

ANSWER = b'{"case_id":"00000000-0000-0000-0000-000000000000","case_number":"339901-20261203-00001"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 202, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})
