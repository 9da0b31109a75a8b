// main mallocs N blocks (mode 0: 16-516 B; 1: 1 in 8 of 1-200 KB), a consumer thread frees them all, then blocks (no calls);
// main churns 64 slots of 64 B at RATE/s for SECS. RSS over time.
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
static long rss(){ FILE*f=fopen("/proc/self/statm","r"); long a,b; fscanf(f,"%ld %ld",&a,&b); fclose(f); return b*4/1024; }
static unsigned long long s=88172645463325252ULL;
static unsigned rnd(){s^=s<<13;s^=s>>7;s^=s<<17;return (unsigned)s;}
static double now(){struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+t.tv_nsec/1e9;}
static void**p; static int n; static volatile int done=0;
static pthread_mutex_t mu=PTHREAD_MUTEX_INITIALIZER; static pthread_cond_t cv=PTHREAD_COND_INITIALIZER; static int go=0, quit=0;
static int C=1; static volatile int ndone=0;
static void* consumer(void*a){ long id=(long)a;
  pthread_mutex_lock(&mu); while(!go) pthread_cond_wait(&cv,&mu); pthread_mutex_unlock(&mu);
  for(int i=id;i<n;i+=C) free(p[i]);
  if(__atomic_add_fetch(&ndone,1,__ATOMIC_ACQ_REL)==C) __atomic_store_n(&done,1,__ATOMIC_RELEASE);
  pthread_mutex_lock(&mu); while(!quit) pthread_cond_wait(&cv,&mu); pthread_mutex_unlock(&mu);
  return 0;
}
int main(int argc,char**argv){
  n=atoi(argv[1]); double secs=atof(argv[2]); double rate=atof(argv[3]); int mode=atoi(argv[4]);
  C=argc>5?atoi(argv[5]):1; pthread_t t[64]; for(long i=0;i<C;i++) pthread_create(&t[i],0,consumer,(void*)i);
  p=malloc(n*sizeof(void*));
  for(int i=0;i<n;i++){ size_t sz = mode==0 ? 16+rnd()%500 : mode==1 ? (rnd()%8?16+rnd()%500:1024+rnd()%200000) : mode==2 ? 32768+rnd()%229376 : 1024+rnd()%31000; p[i]=malloc(sz); memset(p[i],1,sz); }
  int ns=64; void**w=calloc(ns,sizeof(void*)); for(int i=0;i<ns;i++) w[i]=malloc(64);
  long peak=rss();
  pthread_mutex_lock(&mu); go=1; pthread_cond_broadcast(&cv); pthread_mutex_unlock(&mu);
  while(!__atomic_load_n(&done,__ATOMIC_ACQUIRE)) usleep(1000);
  double t0=now(), next=1; long ops=0;
  printf("peak %ld freed %ld\n",peak,rss());
  int batch = rate>=1000? (int)(rate/1000):1; double period = batch/rate;
  while(now()-t0<secs){
    for(int j=0;j<batch;j++){ int i=rnd()%ns; free(w[i]); w[i]=malloc(64); ops++; }
    usleep((useconds_t)(period*1e6));
    double e=now()-t0; if(e>=next){ printf("t=%.0f ops=%ld rss %ld\n",e,ops,rss()); fflush(stdout); next+=3; }
  }
  printf("end ops=%ld rss %ld\n",ops,rss());
  pthread_mutex_lock(&mu); quit=1; pthread_cond_broadcast(&cv); pthread_mutex_unlock(&mu); for(int i=0;i<C;i++) pthread_join(t[i],0);
  printf("after consumer exit rss %ld\n",rss()); usleep(300000); for(int j=0;j<20000;j++){ int i=rnd()%ns; free(w[i]); w[i]=malloc(64);} usleep(2500000);for(int j=0;j<20000;j++){ int i=rnd()%ns; free(w[i]); w[i]=malloc(64);} printf("after exit+churn rss %ld\n",rss());
  return 0;
}
