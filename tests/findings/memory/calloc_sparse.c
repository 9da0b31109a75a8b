// gcc -O2 calloc_sparse.c -o calloc_sparse && ./run5.sh ./calloc_sparse ROUNDS N SIZE TOUCH_PCT
// e.g. ./run5.sh ./calloc_sparse 20 50 4000000 5 : hakmem ~205 MiB, glibc/jemalloc ~12 MiB
// Sparse hash tables: each round callocs N tables of SIZE bytes (fixed size), writes TOUCH_PCT%
// of their pages, then frees them all. RSS after each round's tables are built.
#include <stdlib.h>
#include <string.h>
#include "rss.h"
int main(int c,char**v){ int R=atoi(v[1]); int n=atoi(v[2]); size_t sz=atol(v[3]); int touch=atoi(v[4]);
  void** p=malloc(n*sizeof(void*)); unsigned s=1;
  for(int r=0;r<R;r++){ for(int i=0;i<n;i++){ p[i]=calloc(1,sz); char* q=p[i];
      for(size_t o=0;o<sz;o+=4096){ s=s*1103515245+12345; if((int)((s>>8)%100)<touch) q[o]=1; } }
    if(r<3||r==R-1) printf("r%d %.1f ",r,rss_mib()); for(int i=0;i<n;i++) free(p[i]); }
  printf("| touched %.1f MiB peak %.1f final %.1f MiB",n*(double)sz*touch/100/1048576,peak_mib(),rss_mib()); return 0;}
