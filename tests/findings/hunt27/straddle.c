// 12 live blocks of 0.3-20 MB, each written whole, churned 400 times, then all freed; then
// 20 rounds of two blocks of BIG MiB: blocks on both sides of the extent heap's 16 MiB limit.
// gcc -O2 straddle.c -o straddle && ./straddle 0
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
static unsigned long long s=88172645463325252ull; static unsigned long long rnd(){s^=s<<13;s^=s>>7;s^=s<<17;return s;}
int main(int c,char**v){ size_t big=(size_t)atoi(v[1])<<20; void*k[12]={0};
 for(int i=0;i<400;i++){int j=rnd()%12; free(k[j]); size_t n=300000+rnd()%(20000000-300000); k[j]=malloc(n); memset(k[j],1,n);}
 for(int j=0;j<12;j++) free(k[j]);
 for(int i=0;i<20;i++){ char*a=malloc(big); memset(a,2,big); char*b=malloc(big); memset(b,3,big); free(a); free(b);} 
 return 0;}
