// 40 idle threads with heaps; then thread A mallocs p (a shared start
// block), frees it; thread B frees it again; both then malloc the class.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static int go; static void *p; static size_t SZ;
static void *idle(void *a){ (void)a; free(malloc(100)); while(!__atomic_load_n(&go,0)) usleep(1000); return NULL; }
static void *A(void *a){ (void)a; p = malloc(SZ); fprintf(stderr,"p=%p\n",p); free(p); return NULL; }
static void *B(void *a){ (void)a; free(malloc(100)); free(p); void *q[8]; for(int i=0;i<8;i++) q[i]=malloc(SZ); for(int i=0;i<8;i++) fprintf(stderr,"B got %p\n",q[i]); return NULL; }
int main(int argc, char **argv){
  SZ = atol(argv[1]);
  pthread_t t[40]; for (int i=0;i<40;i++) pthread_create(&t[i],NULL,idle,NULL);
  usleep(100000);
  pthread_t a,b; pthread_create(&a,NULL,A,NULL); pthread_join(a,NULL);
  pthread_create(&b,NULL,B,NULL); pthread_join(b,NULL);
  void *r[8]; for(int i=0;i<8;i++) r[i]=malloc(SZ);
  __atomic_store_n(&go,1,0); for (int i=0;i<40;i++) pthread_join(t[i],NULL);
  malloc_trim(0);
  puts("no report"); return 0;
}
