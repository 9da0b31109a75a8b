// peak of N mixed objects, freed; then churn 64 slots within bins at RATE mallocs/s for SECS; RSS over time
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
static long rss(){ FILE*f=fopen("/proc/self/statm","r"); long a,b; fscanf(f,"%ld %ld",&a,&b); fclose(f); return b*4/1024; }
static unsigned long long s=88172645463325252ULL;
static unsigned rnd(){s^=s<<13;s^=s>>7;s^=s<<17;return (unsigned)s;}
static double now(){struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+t.tv_nsec/1e9;}
int main(int argc,char**argv){
  int n=atoi(argv[1]); double secs=atof(argv[2]); double rate=atof(argv[3]); int mode=argc>4?atoi(argv[4]):0; int csz=argc>5?atoi(argv[5]):0;
  void**p=malloc(n*sizeof(void*));
  for(int i=0;i<n;i++){ size_t sz = mode==0 ? 16+rnd()%500 : (rnd()%8?16+rnd()%500:1024+rnd()%200000); p[i]=malloc(sz); memset(p[i],1,sz); }
  // churn slots allocated before freeing the peak
  int ns=64; void**w=calloc(ns,sizeof(void*)); for(int i=0;i<ns;i++) w[i]=malloc(16+rnd()%200);
  long peak=rss();
  for(int i=0;i<n;i++) free(p[i]);
  double t0=now(), next=1; long ops=0;
  printf("peak %ld MB freed %ld MB\n",peak,rss());
  int batch = rate>=1000? (int)(rate/1000):1; double period = batch/rate;
  while(now()-t0<secs){
    for(int j=0;j<batch;j++){ int i=rnd()%ns; free(w[i]); w[i]=malloc(csz?csz:16+rnd()%200); ops++; }
    usleep((useconds_t)(period*1e6));
    double e=now()-t0; if(e>=next){ printf("t=%.0f ops=%ld rss %ld MB\n",e,ops,rss()); fflush(stdout); next+=2; }
  }
  printf("end ops=%ld rss %ld MB\n",ops,rss()); return 0;
}
