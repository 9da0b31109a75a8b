#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(){ struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+t.tv_nsec*1e-9; }
int main(int argc,char**argv){ size_t sz=atol(argv[1]); int n=atoi(argv[2]); int touch=atoi(argv[3]); int keep=argc>4?atoi(argv[4]):1;
  char** k=calloc(keep,sizeof(char*)); double t0=now();
  for(int i=0;i<n;i++){ int j=i%keep; free(k[j]); k[j]=calloc(1,sz); if(touch) memset(k[j],1,sz); else k[j][0]=1; }
  printf("%.1f us/op\n",(now()-t0)/n*1e6); return 0; }
