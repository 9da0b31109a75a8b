// Each iteration: a scratch buffer of B MiB written and freed, then a result of random size
// in [Smin,Smax) KiB written and kept in a ring of K (the oldest result freed first).
// usage: ./scratch N K B Smin Smax
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define SINK(p) __asm__ volatile(""::"r"(p):"memory")
static long vm(const char*k){FILE*f=fopen("/proc/self/status","r");char l[256];long v=-1;
 while(fgets(l,sizeof l,f)) if(!strncmp(l,k,strlen(k))) v=atol(l+strlen(k));fclose(f);return v;}
int main(int c,char**v){long N=atol(v[1]);int K=atoi(v[2]);size_t B=(size_t)atol(v[3])<<20,lo=atol(v[4])<<10,hi=atol(v[5])<<10;
 void**r=calloc(K,sizeof*r);unsigned long s=88172645463325252ul;long peak=0;
 for(long i=0;i<N;i++){char*b=malloc(B);memset(b,1,B);SINK(b);free(b);
  s^=s<<13;s^=s>>7;s^=s<<17;size_t z=lo+s%(hi-lo);free(r[i%K]);r[i%K]=malloc(z);memset(r[i%K],2,z);
  long vs=vm("VmSize:");if(vs>peak)peak=vs;}
 printf("VmPeak %ld MB\n",peak>>10);return 0;}
