#include <stdio.h>
#include <stdlib.h>
#include <string.h>
// immutable-concat pattern: new=malloc(old+step); memcpy; free(old)  (like python b += chunk)
int main(int argc,char**argv){size_t step=(argc>1?atoi(argv[1]):1)<<20;int n=argc>2?atoi(argv[2]):300;
 char*p=malloc(step);memset(p,1,step);size_t len=step;unsigned long s=0;
 for(int i=1;i<n;i++){char*q=malloc(len+step);memcpy(q,p,len);memset(q+len,(char)i,step);free(p);p=q;len+=step;}
 for(size_t i=0;i<len;i+=4096)s+=p[i];free(p);printf("%zu %lu\n",len,s);return 0;}
