"""The physical limit for an HTTP JSON endpoint on this machine: a bare ASGI app under uvicorn that
reads the body, parses the JSON and answers 202 with a small JSON document."""

import json


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    data = json.loads(body or b"{}")
    out = json.dumps({"case_id": "00000000-0000-0000-0000-000000000000", "echo": len(data)}).encode()
    await send({"type": "http.response.start", "status": 202,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})
