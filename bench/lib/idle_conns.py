"""M1 helper: opens N keep-alive connections, makes one GET /health on each
(so each is a real, idle HTTP/1.1 keep-alive connection), then holds them.

usage: idle_conns.py PORT N
Prints one JSON line {"open": n, "failed": m} once all are established, then
holds until stdin closes; prints {"still_open": k} at exit (connections the
server had not closed meanwhile). Bounded: gives up after 60 s of setup.
"""
import asyncio
import json
import resource
import sys
import time

REQ = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"


async def one(port):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(REQ)
    await w.drain()
    head = await r.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await r.readexactly(length)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    return r, w


async def main(port, n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 64)), hard))
    sem = asyncio.Semaphore(64)  # connect in waves, like clients arriving

    async def guarded():
        async with sem:
            return await asyncio.wait_for(one(port), 20)

    t0 = time.time()
    res = await asyncio.wait_for(asyncio.gather(*(guarded() for _ in range(n)),
                                                return_exceptions=True), 60)
    conns = [x for x in res if not isinstance(x, BaseException)]
    errs = [repr(x) for x in res if isinstance(x, BaseException)]
    print(json.dumps({"open": len(conns), "failed": len(errs), "first_error": errs[0] if errs else None,
                      "seconds": round(time.time() - t0, 2)}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # hold until the parent closes stdin
    still = 0
    for r, w in conns:
        # a connection the server closed reads EOF at once
        try:
            data = await asyncio.wait_for(r.read(1), 0.001)
            still += 0 if data == b"" else 1
        except asyncio.TimeoutError:
            still += 1
        w.close()
    print(json.dumps({"still_open": still}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
