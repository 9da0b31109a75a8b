// T threads each run R requests of N objects (16..M B) allocated then freed,
// then wait idle; main prints its RSS while they are idle.  usage: idle T R N M
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static int T, R, N, M; static pthread_barrier_t bar, bar2;
static long rss_kb(void){ FILE*f=fopen("/proc/self/status","r"); char l[256]; long v=0; while(fgets(l,256,f)) if(!strncmp(l,"VmRSS:",6)) v=atol(l+6); fclose(f); return v; }
static void* run(void* a){ unsigned long long r=88172645463325252ull+(long)a; void** v=malloc(sizeof(void*)*N);
  for(int q=0;q<R;q++){ for(int i=0;i<N;i++){ r^=r<<13; r^=r>>7; r^=r<<17; char*p=malloc(16+r%(M-15)); p[0]=1; v[i]=p; } for(int i=0;i<N;i++) free(v[i]); }
  free(v); pthread_barrier_wait(&bar); pthread_barrier_wait(&bar2); return 0; }
int main(int c,char**a){ T=atoi(a[1]); R=atoi(a[2]); N=atoi(a[3]); M=atoi(a[4]);
  pthread_barrier_init(&bar,0,T+1); pthread_barrier_init(&bar2,0,T+1); pthread_t t[256];
  for(long i=0;i<T;i++) pthread_create(&t[i],0,run,(void*)i);
  pthread_barrier_wait(&bar); usleep(300000); printf("idle rss %ld KB\n", rss_kb());
  pthread_barrier_wait(&bar2); for(int i=0;i<T;i++) pthread_join(t[i],0); return 0; }
