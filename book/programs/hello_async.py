import asyncio
import random


async def hello_world():
    for ch in "Hello, world!":
        x = max(0, random.gauss(.08, .03))
        await asyncio.sleep(x)
        print(ch, end="", flush=True)
    print()

asyncio.run(hello_world())
