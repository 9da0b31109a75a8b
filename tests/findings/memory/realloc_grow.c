// gcc -O2 realloc_grow.c -o realloc_grow && ./run5.sh ./realloc_grow NVEC FINAL_BYTES FACTOR_PCT ROUNDS [SLEEP_MS]
// e.g. ./run5.sh ./realloc_grow 100 1000000 150 20   (hakmem ~600 MiB peak for 95 MiB live; peers 103-161)
// NVEC vectors grow together (round-robin) by FACTOR (150 or 200 %) up to FINAL_BYTES, touched
// fully each step, then all are freed; repeated ROUNDS times.
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "rss.h"
int main(int c,char**v){ int nv=atoi(v[1]); size_t fin=atol(v[2]); int f=atoi(v[3]); int rounds=atoi(v[4]); int ms=c>5?atoi(v[5]):0;
  char** p=calloc(nv,sizeof(char*)); size_t* cap=calloc(nv,sizeof(size_t));
  double maxr=0;
  for(int r=0;r<rounds;r++){
    for(int i=0;i<nv;i++){cap[i]=16;p[i]=malloc(16);memset(p[i],1,16);}
    int grew=1; while(grew){ grew=0;
      for(int i=0;i<nv;i++) if(cap[i]<fin){ size_t nc=cap[i]*f/100; if(nc<=cap[i])nc=cap[i]+8; if(nc>fin)nc=fin;
        p[i]=realloc(p[i],nc); memset(p[i]+cap[i],2,nc-cap[i]); cap[i]=nc; grew=1;}
      double x=rss_mib(); if(x>maxr)maxr=x; }
    double full=rss_mib();
    for(int i=0;i<nv;i++) free(p[i]);
    if(ms) usleep(ms*1000);
    if(r<3||r==rounds-1) printf("r%d full %.1f freed %.1f ",r,full,rss_mib());
  }
  printf("live %.1f MiB peak %.1f final %.1f MiB",nv*(double)fin/1048576,peak_mib(),rss_mib()); return 0;}
