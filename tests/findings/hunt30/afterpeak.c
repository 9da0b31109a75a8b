// build a peak of mixed objects, free everything, then keep running light activity for T seconds; print RSS over time
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
static long rss(){ FILE*f=fopen("/proc/self/statm","r"); long a,b; fscanf(f,"%ld %ld",&a,&b); fclose(f); return b*4; }
static unsigned long long s=88172645463325252ULL;
static unsigned rnd(){s^=s<<13;s^=s>>7;s^=s<<17;return (unsigned)s;}
int main(int argc,char**argv){
  int n=argc>1?atoi(argv[1]):2000000; int secs=argc>2?atoi(argv[2]):5; int mode=argc>3?atoi(argv[3]):0;
  void**p=malloc(n*sizeof(void*));
  for(int i=0;i<n;i++){ size_t sz = mode==0 ? 16+rnd()%500 : (mode==1? 1024+rnd()%31000 : (rnd()%8?16+rnd()%500:1024+rnd()%200000)); p[i]=malloc(sz); memset(p[i],1,sz); }
  fprintf(stderr,"peak %ld KB\n",rss());
  for(int i=0;i<n;i++) free(p[i]);
  fprintf(stderr,"freed %ld KB\n",rss());
  struct timespec t0,t; clock_gettime(CLOCK_MONOTONIC,&t0);
  int ns=argc>4?atoi(argv[4]):64, mx=argc>5?atoi(argv[5]):200; void**w=calloc(ns,sizeof(void*)); int k=0;
  for(;;){ clock_gettime(CLOCK_MONOTONIC,&t); double e=(t.tv_sec-t0.tv_sec)+(t.tv_nsec-t0.tv_nsec)/1e9; if(e>secs)break;
    for(int j=0;j<100;j++){ int i=rnd()%ns; free(w[i]); w[i]=malloc(16+rnd()%mx);} usleep(1000);
    if(++k%500==0) fprintf(stderr,"t=%.1f rss %ld KB\n",e,rss()); }
  fprintf(stderr,"end %ld KB\n",rss()); return 0;
}
