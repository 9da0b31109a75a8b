// large blocks first (nlarge x ~lsz), all freed, then many small objects
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
int main(int c,char**v){ int nlarge=c>1?atoi(v[1]):150; size_t lsz=c>2?atol(v[2]):1<<20; long nsmall=c>3?atol(v[3]):1500000;
 void**p=malloc(sizeof(void*)*(nsmall>nlarge?nsmall:nlarge)); unsigned s=1;
 for(int i=0;i<nlarge;i++){size_t z=lsz+(i*4096)%lsz; p[i]=malloc(z); memset(p[i],2,z);}
 for(int i=0;i<nlarge;i++) free(p[i]);
 for(long i=0;i<nsmall;i++){s=s*1103515245+12345; size_t z=16+(s>>16)%240; p[i]=malloc(z); memset(p[i],1,z);}
 puts("ok"); return 0;}
