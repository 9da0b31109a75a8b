// calloc after dirty frees / reuse / purges / realloc shrinks / aligned allocations: every calloc must read zero.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <malloc.h>
#include <unistd.h>
#define N 40
static uint64_t s=88172645463325252ull;
static uint64_t rng(void){ s^=s<<13; s^=s>>7; s^=s<<17; return s; }
static size_t rs(void){ int k=rng()%4; if(k==0) return (16u<<20)-8192+rng()%16384; if(k==1) return (16u<<20)+rng()%(24u<<20); if(k==2) return 256*1024+rng()%(16u<<20); return (12u<<20)+rng()%(8u<<20); }
static void chk(unsigned char*p,size_t n,int it){ for(size_t i=0;i+8<=n;i+=8){ if(*(uint64_t*)(p+i)){ fprintf(stderr,"NONZERO calloc it=%d n=%zu off=%zu (page %zu) p=%p val=%lx\n",it,n,i,i/4096,p,*(uint64_t*)(p+i)); abort(); } } for(size_t i=n&~7ul;i<n;i++) if(p[i]){fprintf(stderr,"NONZERO tail\n");abort();} }
int main(int argc,char**argv){
  int iters=argc>1?atoi(argv[1]):20000; int sleepy=argc>2?atoi(argv[2]):0;
  unsigned char*p[N]={0}; size_t n[N]={0};
  for(int it=0;it<iters;it++){
    int i=rng()%N; int op=rng()%8;
    if(p[i]){ free(p[i]); p[i]=0; }
    if(op<3){ n[i]=rs(); p[i]=calloc(1,n[i]); chk(p[i],n[i],it); memset(p[i],0xAB,n[i]); }
    else if(op<5){ n[i]=rs(); p[i]=malloc(n[i]); memset(p[i],0xCD,n[i]); }
    else if(op==5){ n[i]=rs(); p[i]=malloc(n[i]); memset(p[i],0xEF,n[i]); size_t m=n[i]/(1+rng()%4)+1; p[i]=realloc(p[i],m); n[i]=m; }
    else if(op==6){ void*q; n[i]=rs(); size_t al=(size_t)8192<<(rng()%9); if(posix_memalign(&q,al,n[i]))abort(); p[i]=q; memset(q,0x77,n[i]); }
    else { n[i]=rs(); p[i]=malloc(n[i]); memset(p[i],0x11,n[i]); size_t m=n[i]+rng()%(4u<<20); p[i]=realloc(p[i],m); memset(p[i],0x22,m); n[i]=m; }
    if(sleepy && it%sleepy==0){ usleep(150000); }
    if(it%3000==0 && argc>3) malloc_trim(0);
  }
  printf("ok\n");
}
