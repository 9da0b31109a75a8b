// Ring of K live buffers (K odd: each slot alternates class), op i allocates a random size
// from class A [alo,ahi) KiB if i is even, else class B [blo,bhi) KiB; each written whole.
// usage: ./ringab N K alo ahi blo bhi
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
int main(int c,char**v){long N=atol(v[1]);int K=atoi(v[2]);size_t a0=atol(v[3])<<10,a1=atol(v[4])<<10,b0=atol(v[5])<<10,b1=atol(v[6])<<10;
 void**r=calloc(K,sizeof*r);unsigned long s=12345;
 for(long i=0;i<N;i++){s^=s<<13;s^=s>>7;s^=s<<17;size_t z=(i&1)?b0+s%(b1-b0):a0+s%(a1-a0);int k=i%K;free(r[k]);r[k]=malloc(z);memset(r[k],1,z);}
 puts("ok");return 0;}
