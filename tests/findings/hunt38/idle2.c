// A burst of N threads alive at once, each mallocs 2 blocks of 24 classes
// (16 B - 256 KiB), touches and frees them, exits. Main then idles (no
// allocator call) and reports RSS, then after one small malloc 200 ms later.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <unistd.h>
static int N; static pthread_barrier_t bar;
static const size_t sz[] = {16,48,96,200,400,800,1500,3000,5000,9000,14000,20000,30000,
  40000,50000,65000,80000,100000,120000,150000,180000,200000,230000,260000};
#define NS (sizeof sz/sizeof sz[0])
static long rss(void){ FILE *f=fopen("/proc/self/status","r"); char l[256]; long v=0; while(fgets(l,sizeof l,f)) if(!strncmp(l,"VmRSS",5)) v=atol(l+6); fclose(f); return v; }
static void *w(void *a){
  void *x = malloc(16); free(x);
  pthread_barrier_wait(&bar);
  void *p[2*NS];
  for (unsigned i=0;i<2*NS;i++){ p[i]=malloc(sz[i/2]); memset(p[i],1,sz[i/2]); }
  for (unsigned i=0;i<2*NS;i++) free(p[i]);
  pthread_barrier_wait(&bar);
  return NULL;
}
int main(int argc,char**argv){
  N = argc>1?atoi(argv[1]):64;
  pthread_t *t = malloc(N*sizeof(pthread_t));
  pthread_barrier_init(&bar,NULL,N);
  long r0 = rss();
  for (int i=0;i<N;i++) pthread_create(&t[i],NULL,w,(void*)(long)i);
  for (int i=0;i<N;i++) pthread_join(t[i],NULL);
  printf("after threads: +%ld KB\n", rss()-r0); fflush(stdout); if (getenv("MS")) malloc_stats();
  sleep(2);
  printf("idle 2 s: +%ld KB\n", rss()-r0);
  for (int i=0;i<30;i++){ usleep(100000); free(malloc(100)); free(malloc(1000)); }
  printf("after 3 s of upkeeps: +%ld KB\n", rss()-r0);
  malloc_trim(0);
  printf("after trim: +%ld KB\n", rss()-r0);
  return 0;
}
