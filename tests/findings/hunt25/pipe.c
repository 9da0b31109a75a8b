// pipeline: stage0 allocs mixed sizes (lo..hi), passes through S stages; each stage may realloc/replace; last frees.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#define Q 4096
typedef struct { void* b[Q]; size_t s[Q]; _Atomic unsigned h, t; } queue;
static int S; static long N; static size_t lo, hi; static queue* qs;
static void put(queue* q, void* p, size_t s){ while (atomic_load(&q->t) - atomic_load(&q->h) >= Q) sched_yield(); unsigned t=atomic_load(&q->t); q->b[t%Q]=p; q->s[t%Q]=s; atomic_store(&q->t,t+1);}
static void* get(queue* q, size_t* s){ while (atomic_load(&q->t)==atomic_load(&q->h)) sched_yield(); unsigned h=atomic_load(&q->h); void* p=q->b[h%Q]; *s=q->s[h%Q]; atomic_store(&q->h,h+1); return p;}
static size_t rsz(unsigned* r){ *r=*r*1103515245+12345; double u=(*r>>8)/(double)(1<<24); // log-uniform
  double l=__builtin_log(lo), h=__builtin_log(hi); return (size_t)__builtin_exp(l+u*(h-l)); }
static void* stage(void* a){ long id=(long)a; unsigned r=id*77+1;
  for(long i=0;i<N;i++){ void* p; size_t s;
    if(id==0){ s=rsz(&r); p=malloc(s); memset(p,1,s<4096?s:4096);} else p=get(&qs[id-1],&s);
    if(id>0 && id<S-1){ // transform: new buffer of new size
      size_t s2=rsz(&r); void* p2=malloc(s2); memcpy(p2,p,(s<s2?s:s2)<4096?(s<s2?s:s2):4096); free(p); p=p2; s=s2; }
    if(id==S-1) free(p); else put(&qs[id],p,s);
  } return 0;}
int main(int c,char**v){ S=c>1?atoi(v[1]):3; N=c>2?atol(v[2]):200000; lo=c>3?atol(v[3]):1024; hi=c>4?atol(v[4]):1<<20;
  qs=calloc(S,sizeof(queue)); pthread_t t[16]; for(long i=0;i<S;i++) pthread_create(&t[i],0,stage,(void*)i);
  for(int i=0;i<S;i++) pthread_join(t[i],0); return 0;}
