// T threads on few cores, each churning malloc/free of mixed sizes, passing 1 in 4 blocks to a neighbour through a lock-free-ish mailbox (mutex)
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
static int T, ITERS;
typedef struct { pthread_mutex_t m; void* q[1024]; int n; } box_t;
static box_t boxes[256];
static void* run(void*arg){ long id=(long)arg; unsigned long long s=id*2654435761ULL+7;
#define R() (s^=s<<13,s^=s>>7,s^=s<<17,(unsigned)s)
  void*w[512]={0};
  for(int it=0;it<ITERS;it++){ int i=R()%512; free(w[i]); size_t sz=(R()%16)?16+R()%512:1024+R()%8192; w[i]=malloc(sz); ((char*)w[i])[0]=1;
    if((it&3)==0){ box_t*b=&boxes[(id+1)%T]; void*x=malloc(16+R()%256); pthread_mutex_lock(&b->m); if(b->n<1024){b->q[b->n++]=x;x=0;} pthread_mutex_unlock(&b->m); free(x); }
    if((it&255)==0){ box_t*b=&boxes[id]; void*tmp[1024]; int k; pthread_mutex_lock(&b->m); k=b->n; memcpy(tmp,b->q,k*sizeof(void*)); b->n=0; pthread_mutex_unlock(&b->m); for(int j=0;j<k;j++) free(tmp[j]); }
  }
  for(int i=0;i<512;i++) free(w[i]); return 0; }
int main(int argc,char**argv){ T=argc>1?atoi(argv[1]):64; ITERS=argc>2?atoi(argv[2]):200000;
  for(int i=0;i<T;i++) pthread_mutex_init(&boxes[i].m,0);
  pthread_t th[256]; for(long i=0;i<T;i++) pthread_create(&th[i],0,run,(void*)i); for(int i=0;i<T;i++) pthread_join(th[i],0);
  for(int i=0;i<T;i++) for(int j=0;j<boxes[i].n;j++) free(boxes[i].q[j]); puts("ok"); return 0; }
