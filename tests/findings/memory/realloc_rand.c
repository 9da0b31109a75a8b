// gcc -O2 realloc_rand.c -o realloc_rand && ./run5.sh ./realloc_rand SLOTS ITERS FACTOR_PCT MAXBYTES
// e.g. ./run5.sh ./realloc_rand 50 5000 150 4000000 : hakmem ~600 MiB peak, 2.4M page faults, 4.9 s; peers 148-193 MiB, 47-207K faults, ~1 s
// SLOTS buffers; each iteration frees a random one and regrows it by realloc (FACTOR_PCT growth
// from 4 KiB) up to a random final size <= MAXBYTES (touching what it writes): a server building
// responses of random sizes.
#include <stdlib.h>
#include <string.h>
#include "rss.h"
int main(int c,char**a){ int S=atoi(a[1]); long it=atol(a[2]); int f=atoi(a[3]); size_t mx=atol(a[4]);
  char** p=calloc(S,sizeof(char*)); size_t* len=calloc(S,sizeof(size_t)); unsigned s=1; double live=0, maxlive=0;
  for(long i=0;i<it;i++){ s=s*1103515245+12345; int k=(s>>8)%S; free(p[k]); live-=len[k];
    s=s*1103515245+12345; size_t fin=4096+(size_t)((double)((s>>4)%1000000)/1000000*(mx-4096));
    size_t cap=4096; char* b=malloc(cap); memset(b,1,cap); size_t used=cap;
    while(used<fin){ size_t nc=cap*f/100; if(nc>fin) nc=fin; b=realloc(b,nc); memset(b+used,2,nc-used); used=nc; cap=nc; }
    p[k]=b; len[k]=used; live+=used; if(live>maxlive)maxlive=live;
    if(i%(it/5)==0) printf("i%ld live %.0f rss %.1f | ",i,live/1048576,rss_mib()); }
  printf("maxlive %.1f peak %.1f final %.1f MiB",maxlive/1048576,peak_mib(),rss_mib()); return 0;}
