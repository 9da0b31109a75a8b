import numpy as np, random, sys, ctypes, os
libc = ctypes.CDLL(None)
random.seed(1)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
keep = []
acc = 0.0
peak = 0
for it in range(n):
    rows = random.randint(200, 2500)
    a = np.zeros((rows, 1024), dtype=np.float64)   # calloc 1.6-20 MB
    b = np.random.rand(rows, 1024) if it % 4 == 0 else np.ones((rows, 1024))
    c = a + b * 2.0
    d = np.sqrt(c) + c.T.copy().T
    acc += float(d[rows // 2, 7])
    keep.append(d)
    if len(keep) > 20:
        keep.pop(random.randrange(len(keep)))
    rss = int(open('/proc/self/statm').read().split()[1]) * 4096 >> 20
    if rss > peak + 5:
        peak = rss
        live = sum(x.nbytes for x in keep) >> 20
        sys.stderr.write("it %d rss %d live %d\n" % (it, rss, live))
        sys.stderr.flush()
        libc.malloc_stats()
print(round(acc, 3))
