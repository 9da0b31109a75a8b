import numpy as np, random, sys
random.seed(1)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
keep = []
acc = 0.0
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
print(round(acc, 3))
