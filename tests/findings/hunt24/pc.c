// producer allocates request buffers, consumer frees them. bounded queue.
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#define Q 256
static void* q[Q]; static int qh,qt,qn; static pthread_mutex_t m=PTHREAD_MUTEX_INITIALIZER; static pthread_cond_t cf=PTHREAD_COND_INITIALIZER,ce=PTHREAD_COND_INITIALIZER;
static long N; static int bigpct, full;
static unsigned long rs=88172645463325252UL; static unsigned long xr(unsigned long*s){*s^=*s<<13;*s^=*s>>7;*s^=*s<<17;return *s;}
void* prod(void*a){unsigned long s=12345;
 for(long i=0;i<N;i++){size_t sz; if(bigpct<0) sz=16+xr(&s)%496; else if((long)(xr(&s)%100)<bigpct) sz=100*1024+xr(&s)%(2*1024*1024-100*1024); else sz=1024+xr(&s)%(63*1024);
  char*p=malloc(sz); memset(p,1,(full||sz<8192)?sz:8192); p[sz-1]=2;
  pthread_mutex_lock(&m); while(qn==Q) pthread_cond_wait(&ce,&m); q[qt]=p; qt=(qt+1)%Q; qn++; pthread_cond_signal(&cf); pthread_mutex_unlock(&m);}
 pthread_mutex_lock(&m); while(qn==Q) pthread_cond_wait(&ce,&m); q[qt]=0; qt=(qt+1)%Q; qn++; pthread_cond_signal(&cf); pthread_mutex_unlock(&m); return 0;}
void* cons(void*a){long sum=0; for(;;){pthread_mutex_lock(&m); while(qn==0) pthread_cond_wait(&cf,&m); char*p=q[qh]; qh=(qh+1)%Q; qn--; pthread_cond_signal(&ce); pthread_mutex_unlock(&m);
 if(!p) break; sum+=p[0]; free(p);} printf("%ld\n",sum); return 0;}
int main(int c,char**v){N=c>1?atol(v[1]):200000; bigpct=c>2?atoi(v[2]):10; full=c>3?atoi(v[3]):0; pthread_t a,b; pthread_create(&a,0,prod,0); pthread_create(&b,0,cons,0); pthread_join(a,0); pthread_join(b,0); return 0;}
