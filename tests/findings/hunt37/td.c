#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e9+t.tv_nsec;}
int main(int argc,char**argv){ long n=atol(argv[1]); size_t size=atol(argv[2]); int shuf=atoi(argv[3]); int rounds=argc>4?atoi(argv[4]):3;
 void**b=malloc(n*sizeof(void*)); uint64_t x=0x9e3779b97f4a7c15; double bm=1e300,bf=1e300;
 for(int r=0;r<rounds;r++){ double t0=now(); for(long i=0;i<n;i++){b[i]=malloc(size);((char*)b[i])[0]=1;} double t1=now();
  if(shuf) for(long i=n-1;i>0;i--){x^=x<<13;x^=x>>7;x^=x<<17;long j=x%(i+1);void*t=b[i];b[i]=b[j];b[j]=t;}
  double t2=now(); for(long i=0;i<n;i++)free(b[i]); double t3=now();
  if(t1-t0<bm)bm=t1-t0; if(t3-t2<bf)bf=t3-t2; }
 printf("malloc %.2f free %.2f\n",bm/n,bf/n); return 0;}
