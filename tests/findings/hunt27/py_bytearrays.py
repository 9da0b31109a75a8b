# 300 bytearray buffers grown with += by random chunks of up to 40 KB, each
# dropped at a random size up to 4 MB (output buffers flushed when full):
# python3 py_bytearrays.py
import random
random.seed(1)
bufs = {}; lim = {}; out = 0
for i in range(400000):
    k = random.randrange(300)
    if k not in bufs: bufs[k] = bytearray(); lim[k] = random.randint(1, 4_000_000)
    bufs[k] += b"x" * random.randint(1, 40000)
    if len(bufs[k]) >= lim[k]: out += len(bufs[k]); del bufs[k]
print(out)
