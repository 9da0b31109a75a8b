#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#define MiB (1ul<<20)
static long rss(void){ long a,b; FILE*f=fopen("/proc/self/statm","r"); fscanf(f,"%ld %ld",&a,&b); fclose(f); return b*4/1024; }
int main(int argc,char**argv){
  size_t s = strtoul(argv[1],0,0)*MiB, ns = strtoul(argv[2],0,0)*MiB; size_t used = argc>3? strtoul(argv[3],0,0)*MiB : 0;
  long r0=rss();
  char*p=malloc(s); memset(p,1,used); p[s-1]=1;
  long r1=rss();
  p=realloc(p,ns); p[ns-1]=2;
  long r2=rss();
  printf("malloc %zu MiB(used %zu) -> realloc %zu MiB: RSS MiB base %ld after malloc %ld after realloc %ld (+%ld)\n", s/MiB, used/MiB, ns/MiB, r0, r1, r2, r2-r0);
  free(p); return 0; }
