import random, sys
random.seed(1)
# lists of large bytes/bytearray/str objects 0.3-20MB
keep=[]
for i in range(400):
    n=random.randint(300_000, 20_000_000)
    t=i%3
    if t==0: o=bytes(n)
    elif t==1: o=bytearray(n); o[::4096]=b'x'*len(o[::4096])
    else: o='a'*n
    keep.append(o)
    if len(keep)>12: keep.pop(random.randrange(len(keep)))
# join of many chunks
for r in range(20):
    chunks=[bytes([r])*random.randint(1000,300000) for _ in range(200)]
    s=b''.join(chunks)
    s2=s.replace(b'\x01',b'\x02')
