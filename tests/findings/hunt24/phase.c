// phases: many small objects -> freed -> few large -> freed -> repeat
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
int main(int c,char**v){ int rounds=c>1?atoi(v[1]):5; long nsmall=c>2?atol(v[2]):1500000; int nlarge=c>3?atoi(v[3]):150; size_t lsz=c>4?atol(v[4]):1<<20;
 void**p=malloc(sizeof(void*)*(nsmall>nlarge?nsmall:nlarge)); unsigned s=1;
 for(int r=0;r<rounds;r++){
  for(long i=0;i<nsmall;i++){s=s*1103515245+12345; size_t z=16+(s>>16)%240; p[i]=malloc(z); memset(p[i],1,z);}
  for(long i=0;i<nsmall;i++) free(p[i]);
  for(int i=0;i<nlarge;i++){size_t z=lsz+(i*4096)%lsz; p[i]=malloc(z); memset(p[i],2,z);}
  for(int i=0;i<nlarge;i++) free(p[i]);
 } puts("ok"); return 0;}
