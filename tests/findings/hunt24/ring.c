// single thread: ring of K live buffers of random size lo..hi, fully touched; free oldest
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
int main(int c,char**v){ long N=c>1?atol(v[1]):200000; int K=c>2?atoi(v[2]):256; long lo=c>3?atol(v[3]):1024, hi=c>4?atol(v[4]):65536;
 void**r=calloc(K,sizeof(void*)); unsigned long s=12345;
 for(long i=0;i<N;i++){ s^=s<<13;s^=s>>7;s^=s<<17; size_t z=lo+s%(hi-lo); int k=i%K; free(r[k]); r[k]=malloc(z); memset(r[k],1,z);} puts("ok"); return 0;}
