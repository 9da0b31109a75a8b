// FIFO ring of live small objects (sizes vary), and random-order mass frees
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
static unsigned long long s=88172645463325252ULL;
static unsigned rnd(){s^=s<<13;s^=s>>7;s^=s<<17;return (unsigned)s;}
int main(int argc,char**argv){ int live=argc>1?atoi(argv[1]):1000000; long ops=argc>2?atol(argv[2]):30000000; int mode=argc>3?atoi(argv[3]):0;
  void**p=calloc(live,sizeof(void*)); long sum=0;
  for(long it=0;it<ops;it++){ int i= mode==0 ? it%live : rnd()%live; if(p[i]) sum+=*(char*)p[i]; free(p[i]); size_t sz=8+rnd()%(mode==2?2000:120); p[i]=malloc(sz); *(char*)p[i]=1; }
  long near=0; for(int i=1;i<live;i++){ long d=(char*)p[i]-(char*)p[i-1]; if(d>-4096&&d<4096) near++; } fprintf(stderr,"near %.3f\n",(double)near/live); printf("%ld\n",sum); return 0; }
