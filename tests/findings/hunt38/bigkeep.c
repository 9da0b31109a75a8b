// N threads alive at once; each mallocs 2 big blocks (200 KiB), touches
// them, frees one and hands the other to main; exits. Main then keeps
// running (small mallocs: the upkeep runs) for 1.5 s and reports RSS.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <unistd.h>
static int N; static pthread_barrier_t bar; static void **kept;
static long rss(void){ FILE *f=fopen("/proc/self/status","r"); char l[256]; long v=0; while(fgets(l,sizeof l,f)) if(!strncmp(l,"VmRSS",5)) v=atol(l+6); fclose(f); return v; }
static void *w(void *a){
  long id=(long)a;
  void *x = malloc(16); free(x);   // a heap: counts as active
  pthread_barrier_wait(&bar);      // all N active
  void *p = malloc(200000), *q = malloc(200000);
  memset(p, 1, 200000); memset(q, 1, 200000);
  kept[id] = p; free(q);
  pthread_barrier_wait(&bar);
  return NULL;
}
int main(int argc,char**argv){
  N = argc>1?atoi(argv[1]):64;
  kept = calloc(N, sizeof(void*));
  pthread_t *t = malloc(N*sizeof(pthread_t));
  pthread_barrier_init(&bar,NULL,N);
  long r0 = rss();
  for (int i=0;i<N;i++) pthread_create(&t[i],NULL,w,(void*)(long)i);
  for (int i=0;i<N;i++) pthread_join(t[i],NULL);
  printf("after threads: +%ld KB\n", rss()-r0);
  for (int i=0;i<150;i++){ usleep(10000); for (int j=0;j<100;j++) free(malloc(64+j)); free(malloc(100000)); }
  printf("after 1.5 s of upkeep: +%ld KB (live %d x 200 KB = %d KB)\n", rss()-r0, N, N*195);
  malloc_trim(0);
  printf("after trim: +%ld KB\n", rss()-r0);
  for (int i=0;i<N;i++) free(kept[i]);
  return 0;
}
