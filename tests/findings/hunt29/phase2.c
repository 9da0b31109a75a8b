#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
static long rss(){ FILE*f=fopen("/proc/self/statm","r"); long a,b; fscanf(f,"%ld %ld",&a,&b); fclose(f); return b*4/1024; }
static uint64_t s=5; static uint64_t rng(){s^=s<<13;s^=s>>7;s^=s<<17;return s;}
int main(int argc,char**argv){ int mode=atoi(argv[1]);
  static void* sm[3000000]; static void* lg[1000]; long peak=0;
  for(int ph=0;ph<8;ph++){
    int ns=0; for(size_t tot=0; tot<(300u<<20); ns++){ size_t n=16+rng()%200; sm[ns]=malloc(n); memset(sm[ns],1,n); tot+=n; }
    long r1=rss(); for(int i=0;i<ns;i++) free(sm[i]);
    int nl=0; for(size_t tot=0; tot<(300u<<20); nl++){ size_t n=(256u<<10)+rng()%(8u<<20); if(mode==1 && (ph&1)) n+=(16u<<20); if(mode==2) n+=(16u<<20); lg[nl]=malloc(n); memset(lg[nl],2,n); tot+=n; }
    long r2=rss(); for(int i=0;i<nl;i++) free(lg[i]);
    if(r1>peak)peak=r1; if(r2>peak)peak=r2;
    printf("phase %d: small %ld MB, large %ld MB, after %ld MB\n",ph,r1,r2,rss());
  }
  printf("peak %ld\n",peak);
}
