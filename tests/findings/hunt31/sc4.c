// large blocks partly used (frac % of their pages touched) and freed; then sparse calloc'd tables
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define MiB (1ul<<20)
static long rss(void){ long a,b; FILE*f=fopen("/proc/self/statm","r"); fscanf(f,"%ld %ld",&a,&b); fclose(f); return b*4/1024; }
int main(int argc,char**argv){
  int n=atoi(argv[1]); size_t ms=strtoul(argv[2],0,0)*MiB; int m=atoi(argv[3]); size_t cs=strtoul(argv[4],0,0)*MiB; int frac=atoi(argv[5]);
  char* volatile* a=malloc(n*sizeof*a); for(int i=0;i<n;i++){a[i]=malloc(ms); memset(a[i],1,ms/100*frac+1);}
  for(int i=0;i<n;i++) free(a[i]);
  long r0=rss();
  struct timespec t0,t1; clock_gettime(CLOCK_MONOTONIC,&t0);
  char* volatile* c=malloc(m*sizeof*c); for(int i=0;i<m;i++){c[i]=calloc(1,cs); c[i][cs/2]=1;}
  clock_gettime(CLOCK_MONOTONIC,&t1);
  printf("freed %d x %zu MiB (%d%% used): rss %ld MiB; %d callocs of %zu MiB (1 page used): rss %ld MiB, %.1f ms\n", n, ms/MiB, frac, r0, m, cs/MiB, rss(), (t1.tv_sec-t0.tv_sec)*1e3+(t1.tv_nsec-t0.tv_nsec)/1e6);
  return 0; }
