#include <stdio.h>
#include <stdlib.h>
#include <string.h>
// malloc N MB, fill fully, realloc to M MB, fill rest, verify
int main(int argc,char**argv){size_t n=strtoull(argv[1],0,0)<<20,m=strtoull(argv[2],0,0)<<20;int reps=argc>3?atoi(argv[3]):1;
 for(int r=0;r<reps;r++){char*p=malloc(n);memset(p,5,n);p=realloc(p,m);for(size_t i=0;i<n;i+=4096)if(p[i]!=5){puts("CORRUPT");return 1;}memset(p+n,6,m-n);free(p);}puts("ok");return 0;}
