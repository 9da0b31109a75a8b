#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <time.h>
static long rss(void){ FILE *f=fopen("/proc/self/status","r"); char l[256]; long v=0; while(fgets(l,sizeof l,f)) if(!strncmp(l,"VmRSS",5)) v=atol(l+6); fclose(f); return v; }
int main(int argc, char **argv){
  size_t al = (size_t)atol(argv[1]) << 20; size_t from = (size_t)atol(argv[2])<<20, to = (size_t)atol(argv[3])<<20;
  void *p; if (al) { if (posix_memalign(&p, al, from)) return 1; } else p = malloc(from);
  memset(p, 1, 4096);
  long r0 = rss();
  struct timespec a,b; clock_gettime(CLOCK_MONOTONIC,&a);
  void *q = realloc(p, to);
  clock_gettime(CLOCK_MONOTONIC,&b);
  printf("align %zu MiB: realloc %zu->%zu MiB moved=%d %.2f ms, RSS %ld -> %ld KB\n", al>>20, from>>20, to>>20, q!=p, (b.tv_sec-a.tv_sec)*1e3+(b.tv_nsec-a.tv_nsec)/1e6, r0, rss());
  free(q); return 0;
}
