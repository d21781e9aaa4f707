import random
import time


def hello_world():
    for ch in "Hello, world!":
        x = max(0, random.gauss(.08, .03))
        time.sleep(x)
        print(ch, end="", flush=True)
    print()

hello_world()
