// gcc -O2 -pthread bigchurn.c -o bigchurn && ./run5.sh ./bigchurn THREADS SLOTS SMIN SMAX SECONDS REMOTE_PCT
// Each thread keeps SLOTS live blocks of SMIN..SMAX bytes (touched), replacing a random one each
// step; REMOTE_PCT% of the replaced blocks are handed to the next thread to free (via a mailbox).
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#include "rss.h"
static int T, slots, secs, remote; static size_t smin, smax;
#define MB 256
typedef struct { pthread_mutex_t m; void* q[MB]; int n; } box_t;
static box_t boxes[64];
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static double maxr=0; static pthread_mutex_t rm=PTHREAD_MUTEX_INITIALIZER;
static void* run(void* a){ int id=(long)a; unsigned s=id*7919+1; void** v=calloc(slots,sizeof(void*));
  double end=now()+secs; long it=0; void* local[64]; 
  while(1){ if((it&255)==0){ if(now()>end)break;
      box_t* b=&boxes[id]; pthread_mutex_lock(&b->m); int n=b->n; void* tmp[MB]; memcpy(tmp,b->q,n*sizeof(void*)); b->n=0; pthread_mutex_unlock(&b->m);
      for(int i=0;i<n;i++) free(tmp[i]);
      if(id==0&&(it&65535)==0){ double r=rss_mib(); if(r>maxr)maxr=r; } }
    it++; s=s*1103515245+12345; int k=(s>>8)%slots; 
    if(v[k]){ s=s*1103515245+12345; if((int)((s>>8)%100)<remote){ box_t* b=&boxes[(id+1)%T]; pthread_mutex_lock(&b->m); if(b->n<MB){b->q[b->n++]=v[k]; v[k]=0;} pthread_mutex_unlock(&b->m);} if(v[k]) free(v[k]); }
    s=s*1103515245+12345; size_t sz=smin+(s>>4)%(smax-smin+1); char* p=malloc(sz); for(size_t o=0;o<sz;o+=4096)p[o]=1; p[sz-1]=1; v[k]=p; }
  for(int i=0;i<slots;i++) free(v[i]); free(v); return 0;}
int main(int c,char**v){ T=atoi(v[1]); slots=atoi(v[2]); smin=atol(v[3]); smax=atol(v[4]); secs=atoi(v[5]); remote=atoi(v[6]);
  for(int i=0;i<T;i++) pthread_mutex_init(&boxes[i].m,0);
  pthread_t th[64]; for(long i=0;i<T;i++) pthread_create(&th[i],0,run,(void*)i);
  for(int k=0;k<secs;k++){ usleep(1000000); printf("%.0f ",rss_mib()); fflush(stdout);} for(int i=0;i<T;i++) pthread_join(th[i],0);
  for(int i=0;i<T;i++){ for(int j=0;j<boxes[i].n;j++) free(boxes[i].q[j]); }
  printf("live~%.1f MiB peak %.1f final %.1f MiB", T*slots*(smin+smax)/2/1048576.0, peak_mib(), rss_mib()); return 0;}
