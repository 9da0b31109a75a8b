// Many threads (N alive at once, in waves): random sizes 8 B - 256 KiB via
// malloc/calloc/memalign/realloc, blocks passed between threads through a
// shared table, checks of contents, calloc zeroing, alignment and
// malloc_usable_size; one thread calls malloc_trim and fork now and then.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/wait.h>
#include <stdatomic.h>
#define SLOTS 4096
static _Atomic(uintptr_t) table[SLOTS];
static int N, WAVES, ITERS;
static _Atomic int stop;
static unsigned rnd(unsigned *s){ *s = *s*1103515245u+12345u; return *s>>8; }
static size_t pick(unsigned *s){ unsigned r=rnd(s)%100; if(r<50) return 8+rnd(s)%512; if(r<80) return 512+rnd(s)%32768; return 32768+rnd(s)%(262144-32768); }
static void fill(unsigned char *p, size_t n){ size_t k = n<64?n:64; memset(p,(unsigned char)((uintptr_t)p>>4),k); }
static void check(unsigned char *p, size_t n){ size_t k=n<64?n:64; for(size_t i=0;i<k;i++) if(p[i]!=(unsigned char)((uintptr_t)p>>4)){ fprintf(stderr,"corrupt %p\n",p); abort(); } }
static void *w(void *a){
  unsigned s = (unsigned)(uintptr_t)a * 7919u + 1;
  for (int it=0; it<ITERS; it++){
    unsigned op = rnd(&s)%8; size_t n = pick(&s);
    unsigned char *p;
    if (op==0){ p = calloc(1,n); for(size_t i=0;i<n;i+=512) if(p[i]) { fprintf(stderr,"calloc not zero %zu\n",n); abort(); } }
    else if (op==1){ size_t al = (size_t)16 << (rnd(&s)%8); p = memalign(al, n%4096+1); n = n%4096+1; if ((uintptr_t)p % al){ fprintf(stderr,"misaligned %p %zu\n",p,al); abort(); } }
    else p = malloc(n);
    if (malloc_usable_size(p) < n){ fprintf(stderr,"usable\n"); abort(); }
    fill(p,malloc_usable_size(p));
    if (op==2){ size_t m = pick(&s); unsigned char*o=p; p = realloc(p, m); if(p!=o){ /* moved: contents of old kept */ unsigned char c=(unsigned char)((uintptr_t)o>>4); size_t k=(n<m?n:m); k=k<64?k:64; for(size_t i=0;i<k;i++) if(p[i]!=c){fprintf(stderr,"realloc lost\n");abort();} } else check(p, n<m?n:m); n=m; fill(p,malloc_usable_size(p)); }
    // store with size in a header-less way: keep size in the table's low bits? store pointer only, size via usable
    uintptr_t old = atomic_exchange(&table[rnd(&s)%SLOTS], (uintptr_t)p);
    if (old){ unsigned char *q=(unsigned char*)old; check(q, malloc_usable_size(q)); free(q); }
  }
  return NULL;
}
static void *trimmer(void *a){ (void)a; int k=0; while(!stop){ usleep(3000); malloc_trim(0); if(++k%20==0){ pid_t c=fork(); if(c==0){ void *p=malloc(100000); free(p); for(int i=0;i<100;i++) free(malloc(i*100)); _exit(0);} waitpid(c,NULL,0);} } return NULL; }
int main(int argc,char**argv){
  N = argc>1?atoi(argv[1]):48; WAVES = argc>2?atoi(argv[2]):10; ITERS = argc>3?atoi(argv[3]):2000;
  pthread_t tt; pthread_create(&tt,NULL,trimmer,NULL);
  pthread_t *t = malloc(N*sizeof(pthread_t));
  for (int wv=0; wv<WAVES; wv++){
    for (int i=0;i<N;i++) pthread_create(&t[i],NULL,w,(void*)(uintptr_t)(wv*N+i+1));
    for (int i=0;i<N;i++) pthread_join(t[i],NULL);
  }
  stop=1; pthread_join(tt,NULL);
  for (int i=0;i<SLOTS;i++) if (table[i]) free((void*)table[i]);
  puts("ok"); return 0;
}
