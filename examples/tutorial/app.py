import asyncio

from websuckets import WebSuckets

app = WebSuckets()

if __name__ == "__main__":
    asyncio.run(app("localhost", 9000))
