#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <stdint.h>
#include <stdatomic.h>
static int N; static pthread_barrier_t bar; static void **blk; 
static long rss(void){ FILE *f=fopen("/proc/self/status","r"); char l[256]; long v=0; while(fgets(l,sizeof l,f)) if(!strncmp(l,"VmRSS",5)) v=atol(l+6); fclose(f); return v; }
static void *w(void *a){
  long id=(long)a;
  for (int c=0;c<20;c++){ size_t z = 16 << (c%14); void *p = malloc(z); memset(p, 1, 16); blk[id*20+c]=p; }
  pthread_barrier_wait(&bar);
  long other = (id*7+3)%N;
  for (int c=0;c<20;c++) free(blk[other*20+c]);
  pthread_barrier_wait(&bar);
  return NULL;
}
int main(int argc,char**argv){
  N = argc>1?atoi(argv[1]):2000; int rounds = argc>2?atoi(argv[2]):5;
  blk = calloc(N*20, sizeof(void*));
  pthread_attr_t at; pthread_attr_init(&at); pthread_attr_setstacksize(&at, 65536);
  pthread_t *t = malloc(N*sizeof(pthread_t));
  for (int r=0;r<rounds;r++){
    pthread_barrier_init(&bar,NULL,N);
    for (int i=0;i<N;i++) if (pthread_create(&t[i],&at,w,(void*)(long)i)) { perror("create"); abort(); }
    for (int i=0;i<N;i++) pthread_join(t[i],NULL);
    pthread_barrier_destroy(&bar);
    printf("round %d rss %ld KB\n", r, rss());
  }
  malloc_trim(0); printf("after trim rss %ld KB\nok\n", rss());
}
