#include <stdlib.h>
#include <stdio.h>
#include <stdint.h>
static unsigned long long s=88172645463325252ULL;
static unsigned rnd(){s^=s<<13;s^=s>>7;s^=s<<17;return (unsigned)s;}
int main(int argc,char**argv){ int live=1000000; long ops=atol(argv[1]);
  void**p=calloc(live,sizeof(void*)); long sum=0; uintptr_t recent[64]={0}; long near_line=0,near_page=0,cnt=0;
  for(long it=0;it<ops;it++){ int i=it%live; if(p[i]){ sum+=*(char*)p[i];
      uintptr_t a=(uintptr_t)p[i]; if(it>ops-2000000){ int nl=0,np=0; for(int k=0;k<64;k++){ if((recent[k]>>6)==(a>>6)) nl=1; if((recent[k]>>12)==(a>>12)) np=1;} near_line+=nl; near_page+=np; cnt++; }
      recent[it&63]=a; }
    free(p[i]); size_t sz=8+rnd()%120; p[i]=malloc(sz); *(char*)p[i]=1; }
  printf("line shared with one of last 64 reads: %.1f%%, page: %.1f%%\n",100.0*near_line/cnt,100.0*near_page/cnt); return 0; }
