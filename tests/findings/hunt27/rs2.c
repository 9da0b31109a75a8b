// realloc stress 2: SLOTS buffers interleaved; each step picks a random slot and grows it by a
// random increment in [1,INC] bytes (realloc, touching the new bytes). When a buffer passes its
// random target size (<= MAXB) it is freed (or, with SHRINK=1, shrunk to a random small size
// and then freed at the next pass).  usage: rs2 SLOTS STEPS INC MAXB SHRINK
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
static uint64_t s=88172645463325252ull; static uint64_t rnd(){s^=s<<13;s^=s>>7;s^=s<<17;return s;}
int main(int c,char**a){int S=atoi(a[1]);long it=atol(a[2]);size_t inc=atol(a[3]),mx=atol(a[4]);int sh=atoi(a[5]);
 char**p=calloc(S,sizeof*p);size_t*l=calloc(S,sizeof*l),*t=calloc(S,sizeof*t);long sum=0;size_t live=0,ml=0;
 for(int k=0;k<S;k++)t[k]=1+rnd()%mx;
 for(long i=0;i<it;i++){int k=rnd()%S;size_t n=l[k]+1+rnd()%inc;
  p[k]=realloc(p[k],n);memset(p[k]+l[k],i,n-l[k]);live+=n-l[k];l[k]=n;if(live>ml)ml=live;
  if(n>=t[k]){ if(sh){size_t m=1+rnd()%(n/8+1);p[k]=realloc(p[k],m);sum+=p[k][m-1];}
    sum+=p[k][0]; live-=l[k]; free(p[k]);p[k]=0;l[k]=0;t[k]=1+rnd()%mx;}}
 printf("sum %ld maxlive %.1f MiB end live %.1f MiB\n",sum,ml/1048576.0,live/1048576.0);return 0;}
