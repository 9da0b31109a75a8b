// Steady large-block churn under mlockall(MCL_CURRENT|MCL_FUTURE).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
static unsigned long long rng = 88172645463325252ULL;
static unsigned long long next(void){ rng ^= rng<<13; rng ^= rng>>7; rng ^= rng<<17; return rng; }
static long rss_kb(void){ FILE*f=fopen("/proc/self/status","r"); char l[256]; long v=-1; while(fgets(l,256,f)) if(!strncmp(l,"VmRSS:",6)) sscanf(l+6,"%ld",&v); fclose(f); return v; }
int main(int argc, char** argv){
  int live = argc>1?atoi(argv[1]):40;
  long iters = argc>2?atol(argv[2]):20000;
  size_t lo = (argc>3?atol(argv[3]):300)*1024, hi=(argc>4?atol(argv[4]):15000)*1024;
  int sleep_us = argc>5?atoi(argv[5]):0;
  if (mlockall(MCL_CURRENT|MCL_FUTURE)) { perror("mlockall"); return 1; }
  char** b = calloc(live, sizeof(char*));
  struct timespec t0,t1; clock_gettime(CLOCK_MONOTONIC,&t0);
  long peak=0;
  for (long i=0;i<iters;i++){
    int k = next()%live;
    free(b[k]);
    size_t sz = lo + next()%(hi-lo);
    b[k] = malloc(sz);
    memset(b[k], 1, 4096); b[k][sz-1]=1;
    if (sleep_us) usleep(sleep_us);
    if ((i & 255)==0){ long r=rss_kb(); if(r>peak)peak=r; }
  }
  clock_gettime(CLOCK_MONOTONIC,&t1);
  long r=rss_kb(); if(r>peak)peak=r;
  printf("time %.3f s, peak rss %ld MB, final rss %ld MB\n",(t1.tv_sec-t0.tv_sec)+(t1.tv_nsec-t0.tv_nsec)/1e9, peak/1024, r/1024);
  return 0;
}
