// Under mlockall(MCL_CURRENT|MCL_FUTURE): phases alternate, many small objects then large blocks.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
static double now(void){ struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+t.tv_nsec/1e9; }
static long rss_kb(void){ FILE*f=fopen("/proc/self/status","r"); char l[256]; long v=-1; while(fgets(l,256,f)) if(!strncmp(l,"VmHWM:",6)) sscanf(l+6,"%ld",&v); fclose(f); return v; }
int main(int argc,char**argv){
  int rounds=atoi(argv[1]); int small_mb=atoi(argv[2]); int large_n=atoi(argv[3]); int us=argc>4?atoi(argv[4]):0;
  if (mlockall(MCL_CURRENT|MCL_FUTURE)) { perror("mlockall"); return 1; }
  int ns = small_mb*1024; void** s = malloc(ns*sizeof(void*)); void* l[64];
  double t0=now();
  for (int r=0;r<rounds;r++){
    for (int i=0;i<ns;i++){ s[i]=malloc(1000); memset(s[i],1,64);} 
    for (int i=0;i<ns;i++) free(s[i]);
    if (us) usleep(us);
    for (int i=0;i<large_n;i++){ size_t sz=(size_t)(2+(i+r)%5)<<20; l[i]=malloc(sz); memset(l[i],2,4096);} 
    for (int i=0;i<large_n;i++) free(l[i]);
    if (us) usleep(us);
  }
  printf("time %.2f s, peak rss %ld MB\n", now()-t0, rss_kb()/1024);
}
