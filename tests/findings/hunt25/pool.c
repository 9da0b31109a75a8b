// workers exchange buffers in a shared slot array: each op allocs a new buffer, swaps into random slot, frees old (often another thread's)
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <math.h>
static long N; static int T, SLOTS; static size_t lo,hi; static _Atomic(void*)* slots;
static size_t rsz(unsigned* r){ *r=*r*1103515245+12345; double u=(*r>>8)/(double)(1<<24); return (size_t)exp(log(lo)+u*(log(hi)-log(lo))); }
static void* w(void* a){ unsigned r=(long)a*991+7; for(long i=0;i<N;i++){ size_t s=rsz(&r); char* p=malloc(s); p[0]=1; p[s-1]=1; if(s>8192) memset(p,0,4096);
   r=r*1103515245+12345; unsigned k=(r>>8)%SLOTS; void* o=atomic_exchange(&slots[k],p); free(o);} return 0;}
int main(int c,char**v){ T=c>1?atoi(v[1]):4; N=c>2?atol(v[2]):500000; SLOTS=c>3?atoi(v[3]):256; lo=c>4?atol(v[4]):1024; hi=c>5?atol(v[5]):1<<20;
 slots=calloc(SLOTS,sizeof(void*)); pthread_t t[64]; for(long i=0;i<T;i++) pthread_create(&t[i],0,w,(void*)i); for(int i=0;i<T;i++) pthread_join(t[i],0);
 for(int i=0;i<SLOTS;i++) free(slots[i]); return 0;}
